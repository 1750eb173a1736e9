"""Prediction markets: AMM pools (liquidity, odds) and each market's contract (status, outcome)."""
