"""The adversarial suite: the attacks of docs/threat-model.md, built from raw bytes."""
