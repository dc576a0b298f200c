"""s321: transmit U.S. CBP Section 321 advance data."""
