"""What tests, benchmarks and scripts share to drive the project from outside: local servers started and
stopped as whole process groups, a benchmark's provenance, and a stand-in for Application Insights.
Nothing in `steps/` or `pyfunc/` imports it (docs/design.md, "Layout and dependency direction")."""
