"""Graph passes, one module each: cse_dce (common subexpressions, dead code), simplify (algebraic
rewrites as a rule table), fusion (groups of nodes -> kernel IR) and memory (liveness, peak bytes)."""
