"""``tuneforge config show``: every field of a recipe config with type, default and help."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tuneforge.errors import TuneforgeError, did_you_mean


def _recipes() -> dict[str, type[BaseModel]]:
    from tuneforge.apps.monitor.config import MonitorConfig
    from tuneforge.apps.recommend.config import RecommendConfig
    from tuneforge.compression.config import DistillConfig, PruneConfig
    from tuneforge.config.schema import TrainConfig
    from tuneforge.pretraining.config import PretrainConfig
    from tuneforge.serve.config import ServeConfig

    recipes = {"train": TrainConfig, "prune": PruneConfig, "distill": DistillConfig, "serve": ServeConfig,
            "monitor": MonitorConfig, "pretrain": PretrainConfig,
            "recommend": RecommendConfig}
    from tuneforge.apps.assistant.config import AssistantConfig

    recipes["assistant"] = AssistantConfig
    return recipes


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    return text.replace("typing.", "").replace("pathlib.", "").replace("NoneType", "None")


def _default(field) -> str:
    if field.default is not PydanticUndefined:
        return repr(field.default) if field.default is not None else "null"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return f"{value.name}" if hasattr(value, "name") else "(section)"
        return repr(value)
    return "required"


def _section(annotation: Any) -> type[BaseModel] | None:
    """The config section of ``Section`` or ``Section | None`` (an optional section such as prompt:)."""
    options = [annotation, *getattr(annotation, "__args__", ())]
    return next((a for a in options if isinstance(a, type) and issubclass(a, BaseModel)), None)


def describe(recipe: str) -> str:
    from tuneforge.methods import registry

    recipes = _recipes()
    if recipe not in recipes:
        raise TuneforgeError(f'Unknown recipe "{recipe}".{did_you_mean(recipe, recipes)}')
    lines = [f"# {recipe}: {recipes[recipe].__doc__.strip().splitlines()[0]}", ""]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if name == "method" and not prefix:  # the top-level method: section, not adversarial.method
                lines.append(f"{prefix}{name}  (section; `name:` picks the method)  default: full")
                lines.append(f"    {field.description}")
                continue
            sub = _section(field.annotation)
            if sub is not None:
                optional = "  (optional section, default: none)" if sub is not field.annotation else ""
                lines.append(f"{prefix}{name}:{optional}  {field.description}")
                walk(sub, prefix + "  ")
                continue
            lines.append(f"{prefix}{name}: {_type_name(field.annotation)} = {_default(field)}")
            if field.description:
                lines.append(f"{prefix}    {field.description}")

    walk(recipes[recipe], "")
    if "method" not in recipes[recipe].model_fields:  # prune: no method section
        return "\n".join(lines)
    lines.append("")
    lines.append("# methods (method.name) and their fields")
    for name, spec in registry().items():
        lines.append(f"method.name: {name}  - {spec.summary}")
        for fname, field in spec.config.model_fields.items():
            if fname == "name":
                continue
            lines.append(f"  {fname}: {_type_name(field.annotation)} = {_default(field)}")
            if field.description:
                lines.append(f"      {field.description}")
    return "\n".join(lines)
