"""The competitor's loop in order (Data, Augment, Train, Evaluate, Ensemble, the leaderboard, Report) and the next
step the runs root's state calls for: what the studio's Home page and `maskcls next` say."""
from __future__ import annotations

LOOP = (("data", "Data", "class imbalance, attributes, leak-free person-level splits"),
        ("augment", "Augment", "preview transforms at chosen probabilities, save a spec"),
        ("train", "Train", "start from a preset or a run, see the time it takes, launch jobs, watch them"),
        ("runs", "Runs", "every run with its interval, is B better than A?, the team's runs"),
        ("evaluate", "Evaluate", "confusion, errors with Grad-CAM, the review queue of likely label errors"),
        ("ensemble", "Ensemble", "soups and votes with TTA, the submission CSV, the leaderboard log"),
        ("report", "Report", "the team's experiments as one document"))


def next_step(runs_root) -> dict:
    """{"page", "why"}: the first thing the runs root's state still lacks, in the loop's order."""
    from maskcls.orchestration.leaderboard import read_public
    from maskcls.orchestration.run_index import index_rows
    from maskcls.orchestration.submissions import SubmissionFolder, list_submissions
    rows = [r for r in index_rows(runs_root) if "/" not in r["name"]]
    live = [r["name"] for r in rows if r["state"] in ("queued", "running")]
    done = [r for r in rows if r["state"] == "completed" and r.get("best macro F1") is not None]
    if not rows:
        return {"page": "train", "why": "no run yet: train one (the demo-cpu preset takes minutes on a CPU)"}
    if not done:
        return {"page": "train", "why": f"{live[0]} is training: watch it on the Train page" if live else
                "no run has completed yet: look at the failed ones' logs on the Train page, then launch again"}
    best = max(done, key=lambda r: r["best macro F1"])
    subs = [s for s in list_submissions(runs_root) if s.get("state") == "completed"]
    if not subs:
        return {"page": "evaluate", "why": f"{best['name']} scored {best['best macro F1']:.4f}: see its errors and "
                                           f"likely label errors, then predict the eval set on the Ensemble page"}
    unscored = [s["name"] for s in subs if read_public(SubmissionFolder(runs_root, s["name"])) is None]
    if unscored:
        return {"page": "ensemble", "why": f"submission {unscored[0]} has no public score recorded: type it on the "
                                           f"Ensemble page once the platform shows it"}
    return {"page": "report", "why": "every submission has its public score: the wrap-up report gathers the season"}
