"""The `crm-bridge` command line."""
