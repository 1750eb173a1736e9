"""The authenticated HTTP API through which the apps ask for discrepancies and launch reconciliations."""
