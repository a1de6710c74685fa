"""Offline evaluation of the recognizer and of the calibrated decision (NIST-style open-set 1:N)."""
