from llmft.train import checkpoints


def staged(output_dir, step, content=b"weights"):
    folder = checkpoints.staging_dir(output_dir) / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(content)
    return folder


def test_publish_moves_and_marks_committed(tmp_path):
    path = checkpoints.publish(staged(tmp_path, 5), tmp_path, info={"step": 5, "eval_loss": 1.5})
    assert path == tmp_path / "checkpoints" / "checkpoint-5"
    assert (path / "adapter_model.safetensors").read_bytes() == b"weights"
    assert checkpoints.info(path) == {"step": 5, "eval_loss": 1.5}
    assert not (checkpoints.staging_dir(tmp_path) / "checkpoint-5").exists()


def test_half_written_checkpoints_are_never_picked_up(tmp_path):
    checkpoints.publish(staged(tmp_path, 5), tmp_path, info={"step": 5})
    staged(tmp_path, 10)  # a save cut short while still in staging
    unmarked = tmp_path / "checkpoints" / "checkpoint-15"  # renamed, killed before the marker
    unmarked.mkdir()
    assert checkpoints.latest(tmp_path).name == "checkpoint-5"
    assert [p.name for p in checkpoints.committed(tmp_path)] == ["checkpoint-5"]


def test_rotation_keeps_the_newest_and_the_protected(tmp_path):
    for step in (2, 4, 6, 8):
        checkpoints.publish(staged(tmp_path, step), tmp_path, info={"step": step})
    best = tmp_path / "checkpoints" / "checkpoint-2"
    removed = checkpoints.rotate(tmp_path, keep=2, protect=best)
    assert [p.name for p in removed] == ["checkpoint-4", "checkpoint-6"]
    assert [p.name for p in checkpoints.committed(tmp_path)] == ["checkpoint-2", "checkpoint-8"]


def test_committed_sorts_by_step_number_not_name(tmp_path):
    for step in (9, 10, 100):
        checkpoints.publish(staged(tmp_path, step), tmp_path, info={"step": step})
    assert [p.name for p in checkpoints.committed(tmp_path)] == ["checkpoint-9", "checkpoint-10", "checkpoint-100"]
