-- Several PBXs (`[[pbx]]`): an agent's device belongs to one PBX. `pbx` is its `[[pbx]]`
-- name, '' for the single PBX of a legacy configuration. `pbx_device` is the device as the
-- bridge names it everywhere (tracker legs, pops, the wallboard, call records): the bare
-- extension for '', else `<pbx>:<extension>` - so `1001` on east and `1001` on west are two
-- agents' devices.
ALTER TABLE agents ADD COLUMN pbx text NOT NULL DEFAULT ''
    CHECK (pbx ~ '^([a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?)?$');
ALTER TABLE agents ADD COLUMN pbx_device text GENERATED ALWAYS AS
    (CASE WHEN pbx = '' THEN device ELSE pbx || ':' || device END) STORED;
ALTER TABLE agents DROP CONSTRAINT agents_device_key;
ALTER TABLE agents ADD CONSTRAINT agents_pbx_device_key UNIQUE (pbx_device);
