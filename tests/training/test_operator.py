"""Operator training pieces: the boundary-data-as-input baseline sees exactly the data BOON sees."""

import pytest
import torch
from torch import Tensor, nn

from lawful.training.operator import BoundaryDataInput, OperatorSettings, build_fno


class _Recorder(nn.Module):
    """Returns its input, so the test sees what the wrapped FNO would."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def test_each_ends_data_becomes_one_channel_constant_along_x():
    x = torch.randn(3, 1, 9)  # (batch, channels, x)
    left, right = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-1.0, 0.0, 4.0])
    seen = BoundaryDataInput(_Recorder())(x, left, right)  # (3, 3, 9)
    assert seen.shape == (3, 3, 9)
    torch.testing.assert_close(seen[:, 0], x[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(seen[:, 1], left[:, None].expand(3, 9), rtol=0, atol=0)
    torch.testing.assert_close(seen[:, 2], right[:, None].expand(3, 9), rtol=0, atol=0)


def test_a_space_time_model_sees_the_whole_boundary_history():
    x = torch.randn(2, 1, 7, 5)  # (batch, channels, x, t)
    history = torch.arange(10.0).reshape(2, 5)  # (batch, t): the data at every frame
    seen = BoundaryDataInput(_Recorder())(x, history)  # (2, 2, 7, 5)
    for point in range(7):
        torch.testing.assert_close(seen[:, 1, point], history, rtol=0, atol=0)


def test_an_xyt_model_sees_the_history_constant_over_x_and_y():
    x = torch.randn(2, 3, 5, 4, 6)  # (batch, channels, x, y, t)
    history = torch.arange(12.0).reshape(2, 6)  # (batch, t)
    seen = BoundaryDataInput(_Recorder())(x, history)  # (2, 4, 5, 4, 6)
    assert seen.shape == (2, 4, 5, 4, 6)
    torch.testing.assert_close(seen[:, :3], x, rtol=0, atol=0)
    torch.testing.assert_close(
        seen[:, 3], history[:, None, None].expand(2, 5, 4, 6), rtol=0, atol=0
    )


def test_data_that_does_not_line_up_with_the_input_is_a_named_error():
    x = torch.randn(2, 1, 7, 5)  # (batch, channels, x, t)
    with pytest.raises(ValueError, match=r"does not line up with the trailing axes"):
        BoundaryDataInput(_Recorder())(x, torch.zeros(2, 4))  # 4 frames, the input has 5


def test_the_wrapped_fno_trains_on_the_data_channels():
    settings = OperatorSettings(4, 8, 4, 1, 0, 16, epochs=1, batch_size=4, lr_step_epochs=1)
    model = BoundaryDataInput(build_fno(settings, multistep=False, in_channels=3))
    x, left, right = torch.randn(4, 1, 17), torch.randn(4), torch.randn(4)
    output = model(x, left, right)
    assert output.shape == (4, 1, 17)
    with torch.no_grad():
        changed = model(x, left + 1.0, right)  # the data reaches the output
    assert float((changed - output.detach()).abs().max()) > 1e-6
    output.square().mean().backward()
    lift = model.fno.lifting.weight  # (width, channels + grid coordinate)
    assert lift.shape[1] == 4
    assert bool((lift.grad[:, 1:3].abs().sum(0) > 0).all())  # both data channels are learned
