"""Calling a pyfunc model with a parsed request, as MLflow's scoring server does.

Apart from the codec (``codec.py``), which turns bodies into inputs and predictions into
bodies: this is the one place the model runs, and where its failures become 4xx answers.
"""

from __future__ import annotations

import inspect
from typing import Any

from mlflow.exceptions import MlflowException

from service.errors import ServingError, truncate
from service.inference.codec import ParsedInput, from_mlflow_error
from service.inference.numeric_input import NumericRows


def accepts_params(predict: Any) -> bool:
    """Whether a pyfunc's predict takes ``params`` (checked once per loaded version)."""
    try:
        return "params" in inspect.signature(predict).parameters
    except (TypeError, ValueError):
        return False


def run_predict(model: Any, parsed: ParsedInput, with_params: bool) -> Any:
    """Call the model, turning any failure into a 4xx error as MLflow's server does."""
    data = parsed.data.frame() if isinstance(parsed.data, NumericRows) else parsed.data
    try:
        if with_params:
            return model.predict(data, params=parsed.params)
        return model.predict(data)
    except MlflowException as exc:
        error = from_mlflow_error(exc)
        error.message = truncate(f"Failed to predict: {error.message}")
        error.outcome = "bad_request"
        raise error from None
    except Exception as exc:
        raise ServingError(
            400,
            "BAD_REQUEST",
            "Encountered an unexpected error while evaluating the model. Verify that the "
            "serialized input Dataframe is compatible with the model for inference. "
            f"Error: {type(exc).__name__}: {exc}",
            outcome="model_error",
        ) from None
