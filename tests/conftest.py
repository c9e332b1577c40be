"""Shared helpers: bake the template into a temporary directory."""

import os
import shutil
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


class Baked:
    """The outcome of one bake: the project path, or the refusal's output."""

    def __init__(self, project, exit_code, stderr):
        self.project = project
        self.exit_code = exit_code
        self.stderr = stderr


def bake(output_dir, create_venv=False, **answers):
    """Generate a project without prompts and return its path."""
    answers.setdefault("create_venv", create_venv)
    path = cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir))
    return Path(path)


@pytest.fixture
def baker(tmp_path):
    """bake() into this test's temporary directory."""

    def _bake(**answers):
        return bake(tmp_path, **answers)

    return _bake


def require_tool(name, why):
    """Skip when a command-line tool is missing; under CI a missing tool is a failure."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({why}); .ci/run installs it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def default_answers(**overrides):
    """The answers cookiecutter would use without prompts, as the hooks see them."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(str(TEMPLATE / "cookiecutter.json"), extra_context=overrides)
    answers = prompt_for_config(context, no_input=True)
    answers["_template"] = str(TEMPLATE)
    return answers


def load_hook(name):
    """Import a hook script as a module (its answers are only read in main())."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
