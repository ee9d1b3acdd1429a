"""Click-to-call and call backs: who may dial what, the AMI Originate, the callback list.

- `safety`: a typed number → the digits an Originate may carry, or a refusal with a reason;
- `originate`: the Originate action's fields, built only from configuration and the roster;
- `service`: `Dialer`, the one way a dial is placed (rate limit, audit, the AMI action);
- `callbacks`: abandoned and unanswered calls not yet answered since;
- `routes`: the HTTP endpoints.
"""
