"""Focal, soft Dice and Lovász-softmax against the papers: hand-worked examples, and value and
gradient against references written here in PyTorch from the papers' definitions (void pixels
removed by indexing, classes looped, Berman et al.'s sort-and-cumsum algorithm)."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax import losses, region_losses

torch = pytest.importorskip("torch")

# One 1x3 image, two classes: p(class 1) = 0.2, 0.6, 0.9; labels 1, 0, 1. A fourth, void
# pixel (label 255, any logits) must change nothing.
P1 = np.array([0.2, 0.6, 0.9])
HAND_LOGITS = np.log(np.stack([1 - P1, P1], -1))[None, None].astype(np.float32)  # (1,1,3,2)
HAND_LABELS = np.array([[[1, 0, 1]]], np.int32)


def with_void_pixel(logits, labels):
    z = np.concatenate([logits, np.array([[[[7.0, -3.0]]]], np.float32)], 2)
    return jnp.asarray(z), jnp.asarray(np.concatenate([labels, [[[255]]]], 2))


def test_docstring_examples_hold():
    for module in (losses, region_losses):
        failed, _ = doctest.testmod(module, extraglobs={"jnp": jnp})
        assert failed == 0, module.__name__


def test_focal_hand_worked_example():
    # p_t = 0.2, 0.4, 0.9. gamma 2: 0.8^2 ln 5 = 1.030040, 0.6^2 ln 2.5 = 0.329865,
    # 0.1^2 ln(10/9) = 0.001054; sum 1.360958, mean 0.453653. alpha 0.25 (class 1 gets
    # 0.25, class 0 0.75): 0.257510 + 0.247399 + 0.000263 = 0.505172.
    z, y = with_void_pixel(HAND_LOGITS, HAND_LABELS)
    per_pixel, mask = losses.pixel_focal(z, y, gamma=2.0)
    np.testing.assert_allclose(per_pixel[0, 0], [1.030040, 0.329865, 0.001054, 0], atol=2e-6)
    assert mask.sum() == 3
    alpha, _ = losses.pixel_focal(z, y, gamma=2.0, alpha=0.25)
    np.testing.assert_allclose(float(alpha.sum()), 0.505172, atol=2e-6)
    # gamma 0, no alpha: the cross-entropy, ln 5 + ln 2.5 + ln(10/9)
    plain, _ = losses.pixel_focal(z, y, gamma=0.0)
    np.testing.assert_allclose(float(plain.sum()), np.log(5 * 2.5 * 10 / 9), rtol=1e-6)


def test_dice_hand_worked_example():
    # class 1: intersection 0.2 + 0.9 = 1.1, sum p 1.7, sum g 2: D = 2.2 / 3.7 = 0.594595;
    # class 0: intersection 0.4, sum p 1.3, sum g 1: D = 0.8 / 2.3 = 0.347826;
    # loss 1 - (0.594595 + 0.347826) / 2 = 0.528790. Squared (Milletari): sum p^2 = 1.21 and
    # 0.81: D = 2.2 / 3.21 = 0.685358, 0.8 / 1.81 = 0.441989; loss 0.436326. Smooth 1:
    # D = 3.2 / 4.7 = 0.680851, 1.8 / 3.3 = 0.545455; loss 0.386847.
    z, y = with_void_pixel(HAND_LOGITS, HAND_LABELS)
    for options, expected in [(dict(smooth=0.0), 0.528790),
                              (dict(smooth=0.0, squared=True), 0.436326),
                              (dict(smooth=1.0), 0.386847)]:
        np.testing.assert_allclose(float(region_losses.soft_dice(z, y, **options)), expected,
                                   atol=2e-6)


def test_lovasz_hand_worked_example():
    # class 1: g = 1, 0, 1, errors |g - p| = 0.8, 0.6, 0.1 (already descending). n = 2;
    # cumsum g = 1, 1, 2 -> intersection 1, 1, 0; cumsum(1 - g) = 0, 1, 1 -> union 2, 3, 3;
    # J = 1/2, 2/3, 1; grad = 1/2, 1/6, 1/3; loss 0.4 + 0.1 + 0.0333 = 0.533333.
    # class 0: g = 0, 1, 0, the same errors; n = 1; intersection 1, 0, 0; union 2, 2, 3;
    # J = 1/2, 1, 1; grad = 1/2, 1/2, 0; loss 0.4 + 0.3 = 0.7. Mean: 0.616667.
    z, y = with_void_pixel(HAND_LOGITS, HAND_LABELS)
    np.testing.assert_allclose(float(region_losses.lovasz_softmax(z, y)), 0.616667, atol=2e-6)
    np.testing.assert_allclose(region_losses.lovasz_grad(jnp.array([1.0, 0.0, 1.0])),
                               [1 / 2, 1 / 6, 1 / 3], rtol=1e-6)
    # one class only (labels 1, 1, 1): errors 0.8, 0.4, 0.1, grad 1/3 each: the mean error,
    # 0.433333; class 0 is absent and does not count
    ones = np.ones_like(HAND_LABELS)
    np.testing.assert_allclose(float(region_losses.lovasz_softmax(*with_void_pixel(
        HAND_LOGITS, ones))), 1.3 / 3, atol=2e-6)


# ---- references from the papers' definitions, in PyTorch (float64) ----

def torch_focal(z, y, gamma, alpha=None, weights=None, class_weights=None):
    """Lin et al. eq. 5, summed over the labelled pixels (void removed by indexing)."""
    keep = y != 255
    logp = torch.log_softmax(z[keep], -1)
    t = y[keep]
    log_pt = logp.gather(1, t[:, None])[:, 0]
    loss = -(1 - log_pt.exp()) ** gamma * log_pt
    if alpha is not None:
        loss = loss * torch.where(t == 1, alpha, 1 - alpha)
    if class_weights is not None:
        loss = loss * class_weights[t]
    if weights is not None:
        loss = loss * weights[keep]
    return loss.sum()


def torch_present_mean(z, y, per_image, class_loss, class_weights=None):
    """The (class-weighted) mean of ``class_loss(p, fg, keep, i)`` over the
    classes present among the labelled pixels, per image (images without labels skipped,
    then averaged) or of the whole batch; void pixels removed by indexing."""
    groups = range(len(y)) if per_image else [slice(None)]
    num_classes, results = z.shape[-1], []
    for i in groups:
        keep = y[i] != 255
        if not keep.any():
            continue
        p, t = torch.softmax(z[i][keep], -1), y[i][keep]
        total, norm = 0.0, 0.0
        for c in range(num_classes):
            fg = (t == c).to(z.dtype)
            if fg.sum() == 0:
                continue
            cw = 1.0 if class_weights is None else class_weights[c]
            total, norm = total + cw * class_loss(p[:, c], fg, keep, i), norm + cw
        results.append(total / norm)
    return torch.stack(results).mean()


def torch_dice(z, y, smooth, squared, per_image, weights=None, class_weights=None):
    """Milletari et al.'s soft Dice per class, 1 - D_c averaged over the present classes."""
    def one_minus_dice(p, g, keep, i):
        w = torch.ones_like(g) if weights is None else weights[i][keep]
        pk = p ** 2 if squared else p
        return 1 - (2 * (w * p * g).sum() + smooth) / ((w * pk).sum() + (w * g).sum()
                                                        + smooth)
    return torch_present_mean(z, y, per_image, one_minus_dice, class_weights)


def torch_lovasz_grad(gt_sorted):
    """Berman et al.'s lovasz_grad."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def torch_lovasz(z, y, per_image, class_weights=None):
    """Berman et al.'s lovasz_softmax (classes="present"): each present class's errors
    sorted descending, dotted with lovasz_grad of the sorted labels."""
    def lovasz(p, fg, keep, i):
        errors_sorted, perm = torch.sort((fg - p).abs(), 0, descending=True)
        return torch.dot(errors_sorted, torch_lovasz_grad(fg[perm]))
    return torch_present_mean(z, y, per_image, lovasz, class_weights)


def batch(seed=0, classes=4, shape=(3, 5, 6), void=0.3):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(*shape, classes)) * 2).astype(np.float32)
    labels = rng.integers(0, classes, shape).astype(np.int32)
    labels[rng.random(shape) < void] = 255
    labels[-1] = 255  # one image without a labelled pixel
    labels[0][labels[0] == 2] = 255  # class 2 absent from image 0
    weights = rng.uniform(0.5, 3.0, shape).astype(np.float32)
    return logits, labels, weights


def compare(jax_fn, torch_fn, logits, labels, rtol=1e-5, atol=1e-6):
    """jax_fn(logits) and its gradient against torch_fn(logits as float64 tensor)."""
    value, grad = jax.value_and_grad(jax_fn)(jnp.asarray(logits))
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = torch_fn(z, torch.tensor(labels, dtype=torch.long))
    expected.backward()
    np.testing.assert_allclose(float(value), expected.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(grad), z.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("gamma, alpha, weighted", [(2.0, None, False), (0.5, None, True),
                                                    (2.0, 0.25, True)])
def test_focal_value_and_gradient_match_the_reference(gamma, alpha, weighted):
    logits, labels, weights = batch(classes=2 if alpha is not None else 4)
    cw = np.linspace(0.5, 2.0, logits.shape[-1]).astype(np.float32)
    options = dict(weights=jnp.asarray(weights), class_weights=jnp.asarray(cw)) if weighted \
        else {}
    torch_options = dict(weights=torch.tensor(weights, dtype=torch.float64),
                         class_weights=torch.tensor(cw, dtype=torch.float64)) if weighted \
        else {}
    compare(lambda z: losses.pixel_focal(z, jnp.asarray(labels), gamma=gamma, alpha=alpha,
                                         **options)[0].sum(),
            lambda z, y: torch_focal(z, y, gamma, alpha, **torch_options), logits, labels)


def test_binary_focal_is_the_papers_sigmoid_form():
    """Two classes with logits (0, x): p = sigmoid(x), the paper's own binary setting."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 4, 4)).astype(np.float32) * 3
    y = rng.integers(0, 2, (2, 4, 4)).astype(np.int32)
    p = 1 / (1 + np.exp(-x.astype(np.float64)))
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, 0.25, 0.75)
    expected = (-alpha_t * (1 - p_t) ** 2 * np.log(p_t)).sum()
    logits = jnp.stack([jnp.zeros_like(x), jnp.asarray(x)], -1)
    got, _ = losses.pixel_focal(logits, jnp.asarray(y), gamma=2.0, alpha=0.25)
    np.testing.assert_allclose(float(got.sum()), expected, rtol=1e-5)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("squared, smooth, weighted", [(False, 1.0, False), (True, 0.0, True),
                                                       (False, 0.0, True)])
def test_dice_value_and_gradient_match_the_reference(per_image, squared, smooth, weighted):
    logits, labels, weights = batch(1)
    cw = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    options = dict(weights=jnp.asarray(weights), class_weights=jnp.asarray(cw)) if weighted \
        else {}
    torch_options = dict(weights=torch.tensor(weights, dtype=torch.float64),
                         class_weights=torch.tensor(cw, dtype=torch.float64)) if weighted \
        else {}
    compare(lambda z: region_losses.soft_dice(z, jnp.asarray(labels), smooth=smooth,
                                              squared=squared, per_image=per_image, **options),
            lambda z, y: torch_dice(z, y, smooth, squared, per_image, **torch_options),
            logits, labels)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_lovasz_value_and_gradient_match_the_reference(per_image, weighted):
    logits, labels, _ = batch(2)
    cw = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    options = dict(class_weights=jnp.asarray(cw)) if weighted else {}
    torch_options = dict(class_weights=torch.tensor(cw, dtype=torch.float64)) if weighted \
        else {}
    compare(lambda z: region_losses.lovasz_softmax(z, jnp.asarray(labels), per_image=per_image,
                                                   **options),
            lambda z, y: torch_lovasz(z, y, per_image, **torch_options), logits, labels)


def test_void_pixels_change_neither_value_nor_gradient_of_the_region_losses():
    logits, labels, _ = batch(3)
    scrambled = logits.copy()
    void = labels == 255
    scrambled[void] = np.random.default_rng(9).normal(size=(void.sum(), 4)) * 50
    for fn in (region_losses.soft_dice, region_losses.lovasz_softmax):
        a, ga = jax.value_and_grad(fn)(jnp.asarray(logits), jnp.asarray(labels))
        b, gb = jax.value_and_grad(fn)(jnp.asarray(scrambled), jnp.asarray(labels))
        np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(ga)[~void], np.asarray(gb)[~void], atol=1e-7)
        assert not np.asarray(gb)[void].any()


def test_jit_equals_eager():
    logits, labels, weights = batch(4)
    z, y, w = jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights)
    for fn in (lambda z, y, w: region_losses.soft_dice(z, y, weights=w, per_image=True),
               lambda z, y, w: region_losses.lovasz_softmax(z, y),
               lambda z, y, w: losses.pixel_focal(z, y, weights=w)[0].sum()):
        np.testing.assert_allclose(float(fn(z, y, w)), float(jax.jit(fn)(z, y, w)), rtol=1e-6)
