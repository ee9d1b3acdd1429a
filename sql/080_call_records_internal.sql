-- Issue 20: calls between agents are recorded too, as direction 'internal' (no customer).
-- 'outbound' now also covers calls an agent dials from its phone or a PBX click-to-dial.
ALTER TABLE call_records DROP CONSTRAINT IF EXISTS call_records_direction_check;
ALTER TABLE call_records
    ADD CONSTRAINT call_records_direction_check
        CHECK (direction IN ('inbound', 'outbound', 'internal'));
