import jax.numpy as jnp
import pytest

from jaxnet.testing import LAYER_CASES, check_layer


@pytest.mark.parametrize("case", LAYER_CASES[:2], ids=lambda c: c.id)
def test_registry_layers_agree(case):
    check_layer(case, jnp.float64, method=None).assert_ok()
