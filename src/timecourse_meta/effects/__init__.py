"""Effect sizes (metafor escalc): standardised mean differences, log odds/risk ratios,
logit proportions, SD recovery, and the pairing of arms into comparisons."""
