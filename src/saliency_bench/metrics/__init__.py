"""Maps -> numbers: deletion/insertion curves and AUCs (`causal`, the RISE protocol), the
evaluate stage that writes them (`evaluate`), and the evidence-based localisation scores
(`localisation`). Empty on purpose: the light stages import `localisation` without torch."""
