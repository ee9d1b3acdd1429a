"""The built-in CRM store: phone numbers, caller lookup, agents, customer import."""
