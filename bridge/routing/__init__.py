"""Routing: where an inbound call goes.

- `rules`: `Rule`, `make_rule`, `parse_when`, `parse_attr` (the `--when`/`--attr` grammars).
- `decide.decide(call, customer, rules, *, default_queue, default_priority, tz) -> Decision`: pure.
- `store.RuleStore(pool)`: `current()` (cached, NOTIFY `crm_rules_changed`), `add_rule`,
  `remove_rule`, `list_rules`; `insert_rule`/`delete_rule` for a caller's own transaction.
- `budget`: `default_route(routing)` (the one fallback decision), `deadline_after(budget_ms)`,
  `by_deadline(work, deadline)` (the one wait against a call's deadline), `abandon(work)`.
- `service.RouteService(directory, rules, config)`: `route(call, deadline=None)` by the
  session's deadline (default `[agi] budget_ms` from now; degraded default on CRM trouble,
  never raises for it), `record(call, decision, recording)` queued for `route_decisions`,
  `pending()`, `drain()`; `stop()` flushes.
- `decision_log.DecisionLog(sink)`: decisions written in batches (one INSERT each, on the
  sink's own connection), a failed batch retried once, then logged as not recorded.
"""
