import numpy as np
import pytest
import torch

from dlfoundations.data import (
    BundledMNISTDataModule,
    CIFAR10DataModule,
    MNIST1DDataModule,
    MNISTDataModule,
    RandomImagesDataModule,
    TensorBatchLoader,
)
from dlfoundations.data.augment import random_crop_flip
from dlfoundations.data.corruption import corrupt_inputs, corrupt_labels
from dlfoundations.errors import UserError
from tests.helpers import write_cifar10, write_mnist


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["uniform", "incorrect"])
def test_label_noise_hits_the_asked_fraction(fraction, kind):
    n = 10_000
    labels = torch.arange(n) % 10
    noisy, mask = corrupt_labels(labels, fraction, 10, torch.Generator().manual_seed(0), kind)
    assert int(mask.sum()) == round(fraction * n)  # exactly this many labels were redrawn
    assert torch.equal(noisy[~mask], labels[~mask])  # the others are untouched
    changed = (noisy != labels).float().mean().item()
    if kind == "incorrect":
        assert changed == pytest.approx(fraction)  # every redrawn label is wrong
    else:
        # A uniform redraw keeps the true class 1/10 of the time: 0.9 * fraction change, +-0.015.
        assert abs(changed - 0.9 * fraction) <= 0.015


def test_label_noise_is_a_function_of_the_seed():
    labels = torch.arange(1000) % 10
    a, _ = corrupt_labels(labels, 0.5, 10, torch.Generator().manual_seed(3))
    b, _ = corrupt_labels(labels, 0.5, 10, torch.Generator().manual_seed(3))
    c, _ = corrupt_labels(labels, 0.5, 10, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _epoch_pairs(loader, epoch):
    loader.sampler.set_epoch(epoch)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_noisy_labels_stay_fixed_across_epochs():
    dm = MNIST1DDataModule(train_size=400, test_size=100, label_noise=0.6, seed=1, on_device=False)
    dm.setup()
    assert int(dm.noise_mask.sum()) == 240
    loader = dm.train_dataloader()
    x0, y0 = _epoch_pairs(loader, 0)
    x1, y1 = _epoch_pairs(loader, 1)
    assert not torch.equal(x0, x1)  # reshuffled ...
    # ... but every signal keeps its (noisy) label: match epochs by the signal itself.
    key0 = {tuple(x.tolist()): int(y) for x, y in zip(x0, y0)}
    assert all(key0[tuple(x.tolist())] == int(y) for x, y in zip(x1, y1))
    assert (dm.splits.y_train != dm.y_train_clean).float().mean() > 0.4


def test_loader_order_depends_only_on_seed_and_epoch_and_ddp_shards_partition():
    data = torch.arange(103)
    a = TensorBatchLoader((data,), batch_size=10, shuffle=True, seed=5)
    b = TensorBatchLoader((data,), batch_size=10, shuffle=True, seed=5)
    b.sampler.set_epoch(3), b.sampler.set_epoch(0)  # a resumed loader lands on the same order
    assert torch.equal(torch.cat([t for (t,) in a]), torch.cat([t for (t,) in b]))
    assert len(a) == 11 and sorted(torch.cat([t for (t,) in a]).tolist()) == list(range(103))
    shards = [TensorBatchLoader((data,), 8, shuffle=True, seed=5, rank=r, world_size=2) for r in (0, 1)]
    seen = [torch.cat([t for (t,) in s]) for s in shards]
    assert len(seen[0]) == len(seen[1]) == 51 and not set(seen[0].tolist()) & set(seen[1].tolist())


def test_input_corruptions():
    g = torch.Generator().manual_seed(0)
    train, test = torch.rand(50, 1, 4, 4), torch.rand(20, 1, 4, 4)
    test[0] = train[0]
    out = corrupt_inputs({"train": train, "test": test}, "shuffled_pixels", g)
    assert torch.equal(out["train"][0], out["test"][0])  # one permutation for every image
    assert not torch.equal(out["train"][0], train[0])
    out = corrupt_inputs({"train": train, "test": test}, "random_pixels", g)
    flat_in, flat_out = train.reshape(50, -1), out["train"].reshape(50, -1)
    assert torch.equal(flat_in.sort(1).values, flat_out.sort(1).values)  # same pixels, moved
    perms = [tuple(torch.argsort(torch.argsort(r)).tolist()) for r in flat_out]
    assert len(set(perms)) > 40  # a different permutation per image
    big = torch.rand(2000, 1, 4, 4) * 3 + 1
    out = corrupt_inputs({"train": big}, "gaussian", g)["train"]
    assert abs(out.mean() - big.mean()) < 0.02 and abs(out.std() - big.std()) < 0.02


def test_mnist_goes_through_torchvisions_class_on_idx_files(tmp_path):
    arrays = write_mnist(tmp_path, n_train=300, n_test=40)
    dm = MNISTDataModule(
        data_dir=str(tmp_path), download=False, subset_size=120, val_size=100, input_shape=[1, 28, 28], on_device=False
    )
    dm.prepare_data()
    dm.setup()
    s = dm.splits
    assert s.x_train.shape == (120, 1, 28, 28) and s.x_val.shape == (100, 1, 28, 28)
    images = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255
    assert torch.equal(s.x_train[:, 0], images[:120])  # the first images of the pool, like the seed
    assert torch.equal(s.x_val[:, 0], images[200:])  # val is the end of the training split
    assert s.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_missing_mnist_names_the_place_and_the_offline_configs(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(UserError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg
    assert "data=mnist_bundled" in msg and "data=mnist1d" in msg and "\n" not in msg


def test_truncated_mnist_file_is_reported(tmp_path):
    write_mnist(tmp_path, n_train=30, n_test=10)
    f = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, val_size=10)
    with pytest.raises(UserError, match="truncated or corrupt"):
        dm.setup()


def test_out_of_range_options_are_user_errors():
    with pytest.raises(UserError, match=r"label_noise=1.5 .*\[0, 1\]"):
        MNIST1DDataModule(label_noise=1.5)
    with pytest.raises(UserError, match="input_corruption"):
        MNIST1DDataModule(input_corruption="blur")
    with pytest.raises(UserError, match="multiple of 10"):
        MNIST1DDataModule(train_size=4001)


def test_bundled_mnist_is_real_mnist():
    dm = BundledMNISTDataModule(train_size=4000, val_size=0, test_size=1000, on_device=False)
    dm.setup()
    s = dm.splits
    assert s.x_train.shape == (4000, 1, 28, 28) and len(s.y_test) == 1000
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    # Real digits: ~19% of MNIST pixels are ink (> 0.5) and classes are balanced.
    ink = (s.x_train > 0.5).float().mean().item()
    assert 0.1 < ink < 0.3
    assert torch.bincount(s.y_train, minlength=10).min() > 300


def test_mnist1d_default_is_the_standard_split():
    dm = MNIST1DDataModule(on_device=False)
    dm.setup()
    s = dm.splits
    assert s.x_train.shape == (4000, 40) and s.x_test.shape == (1000, 40) and len(s.x_val) == 0
    state = np.random.get_state()[1][:5].copy()
    MNIST1DDataModule(train_size=100, test_size=100).setup()
    assert np.array_equal(state, np.random.get_state()[1][:5])  # global RNG left alone


def test_cifar10_goes_through_torchvisions_class_on_pickled_batches(tmp_path, cifar_files_accepted):
    arrays = write_cifar10(tmp_path, per_batch=12, n_test=7)
    dm = CIFAR10DataModule(
        data_dir=str(tmp_path),
        download=False,
        val_size=10,
        normalize=False,
        input_shape=[3, 32, 32],
        label_noise=0.5,
        label_noise_kind="incorrect",
    )
    dm.prepare_data()
    dm.setup()
    s = dm.splits
    assert s.x_train.shape == (50, 3, 32, 32) and s.x_val.shape == (10, 3, 32, 32) and len(s.y_test) == 7
    first = torch.from_numpy(arrays["data_batch_1"][0]).float().view(3, 32, 32) / 255
    assert torch.equal(s.x_train[0], first)  # CHW, the first image of data_batch_1
    assert int(dm.noise_mask.sum()) == 25 and bool((s.y_train != dm.y_train_clean)[dm.noise_mask].all())


def test_cifar10_missing_or_corrupt_says_where_the_files_go(tmp_path, cifar_files_accepted):
    with pytest.raises(UserError) as err:
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).prepare_data()
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value) and "data_batch_1" in str(err.value)
    write_cifar10(tmp_path, per_batch=4, n_test=4)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x02}q\x00(X")
    with pytest.raises(UserError, match="truncated or corrupt"):
        CIFAR10DataModule(data_dir=str(tmp_path), download=False).setup()


def test_batch_augmentation_crops_and_flips():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8).repeat(50, 1, 1, 1)
    out = random_crop_flip(x, padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2,) * 4)
    flipped = 0
    for i in range(len(x)):  # every output is some 8x8 window of the padded image, maybe mirrored
        windows = [padded[i, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i].flip(2), w) for w in windows)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 25 <= flipped <= 75  # about half of 100 images are mirrored
    again = random_crop_flip(x, padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # a function of the generator's seed


def test_shared_size_options_keep_the_first_items(tmp_path):
    arrays = write_mnist(tmp_path, n_train=300, n_test=50)
    dm = MNISTDataModule(
        data_dir=str(tmp_path), download=False, train_size=150, val_size=100, test_size=20, subset_size=40
    )
    dm.setup()
    images = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255
    assert torch.equal(dm.splits.x_train[:, 0], images[:40])  # subset_size: the first of train_size's 150
    assert len(dm.splits.x_val) == 100 and len(dm.splits.x_test) == 20
    bundled = BundledMNISTDataModule(train_size=100, test_size=10, subset_size=30)
    bundled.setup()
    assert len(bundled.splits.x_train) == 30 and len(bundled.noise_mask) == 30
    with pytest.raises(UserError, match=r"^data.subset_size=200 asks for more than the 100 items there are"):
        BundledMNISTDataModule(train_size=100, test_size=10, subset_size=200).setup()


def test_random_images_draw_as_many_as_subset_size_asks_and_do_not_depend_on_the_run_seed():
    sized = RandomImagesDataModule(input_shape=[1, 4, 4], subset_size=7000, val_size=3, test_size=5, seed=1)
    sized.setup()
    assert (len(sized.splits.x_train), len(sized.splits.x_val), len(sized.splits.x_test)) == (7000, 3, 5)
    default = RandomImagesDataModule(input_shape=[1, 4, 4], test_size=5, seed=2)
    default.setup()
    assert len(default.splits.x_train) == 5000
    # dataset_seed, not seed; nested training sets and one test set whatever the sizes drawn
    assert torch.equal(default.splits.x_train[:100], sized.splits.x_train[:100])
    assert torch.equal(default.splits.y_train[:100], sized.splits.y_train[:100])
    assert torch.equal(default.splits.x_test, sized.splits.x_test)
    assert torch.equal(default.splits.y_test, sized.splits.y_test)
    assert not torch.equal(sized.splits.x_test[:3], sized.splits.x_val)  # splits from their own streams
    with pytest.raises(UserError, match=r"^data.subset_size=20 asks for more than the 10 items there are"):
        RandomImagesDataModule(input_shape=[1, 4, 4], train_size=10, subset_size=20).setup()


def test_files_to_write_and_permission_errors_name_the_data_dir(tmp_path):
    from dlfoundations.data.files import open_dataset

    assert MNISTDataModule(data_dir=str(tmp_path)).files_to_write() == [tmp_path / "MNIST" / "raw"]
    assert MNISTDataModule(data_dir=str(tmp_path), download=False).files_to_write() == []
    write_mnist(tmp_path, n_train=30, n_test=10)
    assert MNISTDataModule(data_dir=str(tmp_path)).files_to_write() == []  # the files are there: read only
    cached = MNIST1DDataModule(train_size=40, test_size=10, cache_dir=str(tmp_path))
    (target,) = cached.files_to_write()
    cached.setup()
    assert target.is_file() and cached.files_to_write() == []  # written once, then only read

    def denied():
        raise PermissionError(13, "Permission denied", str(tmp_path / "MNIST"))

    with pytest.raises(UserError, match=r"^MNIST: no permission to write .*MNIST \(Permission denied\); .*data_dir"):
        open_dataset(denied, "MNIST", tmp_path, "the files", "use data=mnist1d")


def test_train_eval_and_train_clean_share_one_pass_and_score_their_own_labels(tmp_path):
    from dlfoundations.data.base import eval_groups
    from dlfoundations.models import MLP
    from dlfoundations.run.train import main
    from tests.helpers import make_cfg

    assert eval_groups(["test", "train_eval", "val", "train_clean"]) == [
        ["test"],
        ["train_eval", "train_clean"],
        ["val"],
    ]
    sets = "[train_eval,test,train_clean]"
    cfg = make_cfg(
        [
            "data.train_size=300",
            "data.test_size=100",
            "data.label_noise=0.4",
            "model.width=16",
            "trainer.max_epochs=30",
            "optimizer=adam",
            "optimizer.lr=0.01",
            f"data.eval_sets={sets}",
            f"data.test_sets={sets}",
        ],
        tmp_path,
    )
    results = main(cfg)
    import hydra

    dm = hydra.utils.instantiate(cfg.data)
    dm.setup()
    loaders = dm.val_dataloader()
    assert [len(loader.tensors) for loader in loaders] == [3, 2]  # (x, y_noisy, y_clean) and (x, y)
    net = MLP(40, width=16)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    with torch.no_grad():
        predicted = net(dm.splits.x_train).argmax(1)
    noisy = (predicted == dm.splits.y_train).float().mean().item()
    clean = (predicted == dm.y_train_clean).float().mean().item()
    assert abs(noisy - clean) > 0.05  # 40% noise: the two accuracies are different numbers
    assert abs(results["metrics"]["train_eval/acc"] - noisy) <= 1e-6
    assert abs(results["metrics"]["train_clean/acc"] - clean) <= 1e-6
