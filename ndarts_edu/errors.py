"""The package's two errors: ``ConfigError`` for bad input (and the checks that raise it), and
``SearchDiverged`` for a search whose numbers blew up.

Every message names the offending value and what is allowed, so that the command line
can print it as one line and a notebook user sees what to change.
"""
import json
import math
import os
from importlib import resources


class ConfigError(ValueError):
    """A setting, file or argument that cannot be used; the message says why."""


class SearchDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the likely causes.

    Raised by ``Search.run`` with ``result``: the search's result (status ``"diverged"``, the
    history so far).
    """

    result = None


def one_line(error):
    """An error's message on one line (for a one-line report); its type where it has none."""
    return " ".join(str(error).split()) or type(error).__name__


def check_choice(name, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise ConfigError naming both."""
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, allowed))}")
    return value


def check_number(name, value, *, minimum=None, maximum=None, strict=False, integer=False):
    """Return ``value`` as a number if it is finite and in range, else raise ConfigError.

    ``strict`` makes ``minimum`` exclusive (``> minimum`` instead of ``>= minimum``).
    """
    # Text and booleans would pass int()/float() here and break later, far from the mistake.
    if isinstance(value, (str, bytes, bool)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if integer and (isinstance(value, float) and not float(value).is_integer()):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None:
        too_small = number <= minimum if strict else number < minimum
        if too_small:
            relation = ">" if strict else ">="
            raise ConfigError(f"{name} must be {relation} {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value!r}")
    return number


def read_json(path, what):
    """The JSON data in ``path``; ConfigError if the file is missing or is not JSON."""
    if not os.path.exists(path):
        raise ConfigError(f"no {what} at {path!r}")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path!r} is not valid JSON ({error})") from None


def read_format_file(path, shipped, what, data_format):
    """A JSON file this package writes, marked ``"format": data_format``: ``path``, or with
    ``path=None`` the copy shipped inside the package as ``shipped``."""
    if path is None:
        resource = resources.files(__package__).joinpath(shipped)
        if not resource.is_file():
            raise ConfigError(f"this copy of ndarts_edu ships no {shipped}: compute it "
                              f"(python -m ndarts_edu {what}) and pass its path")
        with resource.open("r") as f:
            data = json.load(f)
    else:
        data = read_json(path, f"{what} file")
    if not isinstance(data, dict) or data.get("format") != data_format:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path or shipped!r} is not an ndarts_edu {what} file "
                          f"(format {found!r})")
    return data
