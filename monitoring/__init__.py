"""Operations' side of the product: the wrong-prediction alert, run where Azure Monitor is not."""
