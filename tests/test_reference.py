"""Tests of reference."""
from maskcls.data.reference import read_listing


def test_the_real_listing_travels_with_the_repo():
    train, ids = read_listing("train_image_paths.txt"), read_listing("eval_image_ids.txt")
    assert len(train) == 18_900 and len(set(train)) == 18_900
    assert len(ids) == 12_600 and ids != sorted(ids)
    assert train[0] == "train/images/000001_female_Asian_45/incorrect_mask.jpg"
    assert sum(p.endswith(".png") for p in train) == 511


def test_demo_data_from_the_carried_listing():
    """`demo-data --from-listing real` plans the real layout: all 2,700 folders and 12,600 eval ids in order
    (planned, not drawn: drawing 31,500 images is the GPU script's job, not a unit test's)."""
    from maskcls.data.demo import plan_from_listing, resolve_listing
    listing, eval_ids = resolve_listing("real", None)
    train, evals = plan_from_listing(listing, eval_ids, seed=0)
    assert len(train) == 2_700 and sum(len(s.names) for s in train) == 18_900
    assert any(s.folder == "001498-1_male_Asian_23" for s in train)
    planned = [name.split("/")[-1] for s in evals for name in s.names]
    assert sorted(planned) == sorted(read_listing("eval_image_ids.txt"))
