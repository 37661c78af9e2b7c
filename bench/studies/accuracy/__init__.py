"""The accuracy study of issue 5: drivers over ``admm.ADMMNetwork`` and the results (*.jsonl)."""
