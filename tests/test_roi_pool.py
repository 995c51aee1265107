import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from bags.roi_pool import GridRoIAlign


@pytest.mark.parametrize("sampling_ratio", [1, 2])
def test_matches_torchvision_roi_align_values_and_gradients(sampling_ratio):
    torch.manual_seed(0)
    features = torch.randn(3, 8, 16, 16, requires_grad=True)
    boxes = []
    for _ in range(3):
        corner = torch.rand(20, 2) * 70 - 5  # some boxes reach outside the image
        boxes.append(torch.cat([corner, corner + torch.rand(20, 2) * 30], dim=1))
    boxes[1] = boxes[1][:0]  # an image without RoIs
    boxes[2][0] = torch.tensor([10.0, 10.0, 10.5, 10.2])  # narrower than one feature cell
    shapes = [(64, 64)] * 3
    reference = MultiScaleRoIAlign(["0"], 5, sampling_ratio)({"0": features}, boxes, shapes)
    ours = GridRoIAlign("0", 5, sampling_ratio)({"0": features}, boxes, shapes)
    assert ours.shape == reference.shape == (40, 8, 5, 5)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    upstream = torch.randn_like(reference)
    (grad_reference,) = torch.autograd.grad((reference * upstream).sum(), features)
    (grad_ours,) = torch.autograd.grad((ours * upstream).sum(), features)
    torch.testing.assert_close(grad_ours, grad_reference, atol=1e-5, rtol=1e-5)
