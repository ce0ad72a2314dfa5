"""The report template loader chain: the user's ``--template-dir`` folders, then plugin
template folders, then the packaged templates.

The packaged templates are also reachable under the ``default:`` prefix, so an override can
replace a single block of a built-in template::

    {% extends "default:report.html" %}
    {% block verdict %}<p>Our own verdict</p>{% endblock %}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import jinja2

from robustbench_lite.errors import ReportTemplateError

PACKAGE = "robustbench_lite"
TEMPLATES = "reports/templates"
DEFAULT_PREFIX = "default"


def default_loader() -> jinja2.BaseLoader:
    """The templates packaged with robustbench_lite (``reports/templates``)."""
    return jinja2.PackageLoader(PACKAGE, TEMPLATES)


def template_loader(template_dirs: Sequence[Path] = (), *,
                    plugin_dirs: Sequence[Path] = ()) -> jinja2.BaseLoader:
    """A loader that looks a template name up in ``template_dirs`` (in order), then in
    ``plugin_dirs``, then in the packaged templates; ``default:NAME`` always means the
    packaged template ``NAME``."""
    loaders: list[jinja2.BaseLoader] = []
    folders = [*template_dirs, *plugin_dirs]
    if folders:
        loaders.append(jinja2.FileSystemLoader([str(folder) for folder in folders]))
    loaders.append(default_loader())
    loaders.append(jinja2.PrefixLoader({DEFAULT_PREFIX: default_loader()}, delimiter=":"))
    return jinja2.ChoiceLoader(loaders)


@contextmanager
def template_errors() -> Iterator[None]:
    """Turn jinja2's template problems inside the block into one-line `ReportTemplateError`s."""
    try:
        yield
    except jinja2.TemplateNotFound as exc:
        raise ReportTemplateError(f"template not found: {exc.name}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ReportTemplateError(f"template {exc.filename or exc.name}, line {exc.lineno}: "
                                  f"{exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ReportTemplateError(f"template error: {exc}") from None
