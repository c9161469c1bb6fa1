"""The ensemble methods' names and what each does: light enough for the CLI's --help (no torch).

maskcls.infer.ensemble registers one implementation per name (`list_methods()` there); a test keeps the two
in step.
"""
METHOD_HELP = {
    "soft": "mean of the members' probabilities (weights optional)",
    "hard": "majority of the members' votes, each counting its weight; ties go to the highest mean probability",
    "soup": "average the weights of checkpoints of one architecture, then predict once",
    "greedy-soup": "soup that adds checkpoints best-first, keeping one only if validation macro F1 does not drop",
}
METHODS = tuple(METHOD_HELP)
