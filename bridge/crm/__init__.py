"""The built-in CRM store.

- `phones.to_e164(raw, region) -> str | None`: a caller ID or dialled number → E.164.
- `directory.PostgresDirectory(pool)`: `lookup(e164) -> Customer | None`, cached, kept honest
  by NOTIFY `crm_customer_changed` (Component: start/stop/health).
- `metrics`: the directory's cache counter (`crm_bridge_route_cache`).
- `listener.PgListener(pool)`: the one LISTEN connection implementation; pass one instance
  as `listener=` to the directory and the rule store to share a connection.
- `agents`: `Agent`, `create_agent`, `authenticate`, `agent_by_device`, `list_agents`, `owner_of`.
- `importer`: `import_file` / `import_rows` for `crm-bridge customers import`.
"""
