"""Everything the served model runs: normalisation, the pyfunc contract and the model families."""
