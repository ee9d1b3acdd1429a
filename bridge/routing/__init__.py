"""Routing: where an inbound call goes.

- `rules`: `Rule`, `make_rule`, `parse_when`, `parse_attr` (the `--when`/`--attr` grammars).
- `decide.decide(call, customer, rules, *, default_queue, default_priority, tz) -> Decision`: pure.
- `store.RuleStore(pool)`: `current()` (cached, NOTIFY `crm_rules_changed`), `add_rule`,
  `remove_rule`, `list_rules`; `insert_rule`/`delete_rule` for a caller's own transaction.
- `service.RouteService(directory, rules, config)`: `route(call)` within `[agi] budget_ms`
  (degraded default on CRM trouble, never raises for it), `record(call, decision, recording)`
  into `route_decisions` in the background, `pending()`, `drain()`.
"""
