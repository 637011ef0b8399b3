"""The library the entry points share: tracking, metrics, candidate logging, the operating point, the
gate, evaluation sets, transformer fine-tuning and export. Entry points import from here, never from
each other (docs/design.md, "Layout and dependency direction")."""
