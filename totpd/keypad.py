"""The telephone keypad, as every layer sees it: how many digits one input may carry."""

MAX_DIGITS = 20  # Vonage collects at most 20 DTMF digits per input
