"""The adversarial suite: every applicable row of ``../shared/security-catalogue.md``, by row id."""
