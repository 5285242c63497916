"""Publishers: file (JSON Lines spool), HTTP (batched POST), MQTT (QoS 1)."""
