"""Write N randomly initialised checkpoints (runs m0..mN-1) for timing ensemble inference: weights don't change speed."""
import sys

from maskcls.train.config import RunConfig
from maskcls.common.fileio import write_text
from maskcls.data.labels import class_names
from maskcls.models.backbones import create_model
from maskcls.common.runfolder import RunFolder
from maskcls.common.checkpoints import save_checkpoint

root, n, model, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for i in range(n):
    cfg = RunConfig(model=model, pretrained=False, image_size=[size, size])
    run = RunFolder(root, f"m{i}")
    run.path.mkdir(parents=True, exist_ok=True)
    write_text(run.config_path, cfg.to_json())
    run.write_status(state="completed")  # a run folder: listed by the studio, usable as a member
    net, _ = create_model(model, head="single")
    save_checkpoint(run.best_path, {"model": net.state_dict(), "config": cfg.to_dict(), "classes": class_names(),
                                    "epoch": 0})
    print("wrote", run.best_path)
