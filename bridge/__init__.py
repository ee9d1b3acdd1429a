"""asterisk-crm-bridge: joins an Asterisk PBX to a CRM."""

__version__ = "0.1.0"
