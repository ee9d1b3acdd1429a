"""Routing: rules, the pure `decide()`, the rule store, and the route service the PBX asks."""
