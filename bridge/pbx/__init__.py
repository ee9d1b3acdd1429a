"""Several PBXs behind one bridge (`[[pbx]]` entries).

- `namespace`: the one boundary where a PBX's Linkedids, Uniqueids and extensions become
  the bridge's (`east:1700000000.42`, `east:1001`); a legacy single PBX keeps them bare.
- `build`: one PBX's parts (tracker, AMI link, queue control, reconciler, ARI app) and how
  its link feeds the shared pop hub, wallboard, participants and call records.
- `live`: every PBX's live calls and queue members read as one.
- `group`: several PBXs' links as one component (`ami`, `ari`, `reconcile`) whose health is
  the aggregate with each PBX's state.
- `attribution`: which PBX a FastAGI route request comes from.
- `cdrs`: a PBX's own CDR store read in its namespace.
"""
