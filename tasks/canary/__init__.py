"""The canary release steps: preflight, steps (scale up, verify the split, scale down, abort), pause (approval
and promotion between steps), and `analysis/` with one module per provider."""
