"""protoc-gen-dfpy: a protoc/buf plugin that turns proto3 contracts into pydantic v2 models.

It reads a ``CodeGeneratorRequest`` on stdin and writes a ``CodeGeneratorResponse`` on stdout. Run it
with ``strategy: all`` (one request for every file): it writes the cross-file ``registry.py``. The
normal entry point is ``proto/codegen/generate.sh``, which also formats the output with ruff.

Output, relative to the ``out`` directory:

* ``a/b/v1/c.py`` for every ``a/b/v1/c.proto`` that declares a message or an enum (a file that only
  declares ``extend`` blocks, like ``deksdenflow/options/v1/options.proto``, has nothing to bind),
  plus an ``__init__.py`` in every package directory, the top level included.
* ``registry.py``: ``EVENT_TYPES`` / ``COMMAND_TYPES``, type string -> model class.

Mapping (proto3 semantics: a missing field reads as its zero value, so adding fields stays compatible):

* message -> ``class Name(ContractModel)`` (frozen, ``extra="ignore"``) with ``PROTO_NAME`` and, from the
  ``deksdenflow.options.v1.event_type`` / ``command_type`` options, ``EVENT_TYPE`` / ``COMMAND_TYPE``.
  Nested messages and enums are flattened to module level as ``Outer_Inner``.
* enum -> ``base.OpenEnum`` (a ``StrEnum``); enum-typed fields carry ``base.open_enum_field`` so that
  readers of the log (validation context ``base.TOLERANT``) read unknown values as the zero value.
  Member name = value name without the enum's UPPER_SNAKE prefix
  (``STEP_TYPE_WORK`` -> ``StepType.WORK``), member value = full value name (the protobuf JSON form).
  If any value lacks the prefix or would not be a valid identifier once stripped, no value is stripped.
* scalars -> ``str = ""``, ``bool = False``, ``int = 0``, ``float = 0.0``, ``bytes = b""``; enums default to
  their zero value; message fields -> ``X | None = None``; ``optional`` scalars -> ``T | None = None``;
  ``repeated`` -> ``tuple[T, ...] = ()``; ``map<K, V>`` -> ``dict[K, V]`` (empty);
  ``google.protobuf.Timestamp`` -> ``datetime | None`` (UTC);
  ``google.protobuf.Struct`` -> ``dict[str, Any]`` (empty).
* leading comments (trailing ones for fields and enum values when there is no leading comment)
  -> class docstrings and ``Field(description=...)``.

JSON: field names are the proto field names; enums are their value names; bytes are base64; Timestamp is
RFC 3339; int64 is written as a number (protobuf writes a string; both parse everywhere). Any protobuf
JSON parser reads our bodies, and we read what protobuf's JSON printer writes.

The custom options are read without generated code for options.proto: the numbers of the extensions
``deksdenflow.options.v1.event_type`` / ``command_type`` are looked up in the request's descriptors,
and their values are taken from the unknown fields of each message's ``MessageOptions``.

Everything the mapping cannot express faithfully is a plugin error with the file and element named:
proto2/editions files, oneofs, other well-known types, services, names that would clash in Python,
malformed or duplicated type strings.
"""

from __future__ import annotations

import keyword
import re
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pydantic
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

FieldProto = descriptor_pb2.FieldDescriptorProto

PLUGIN_NAME = "protoc-gen-dfpy"
BASE_MODULE = "deksdenflow_core.contracts"  # ``from BASE_MODULE import base as _base``

# Full names of our custom message options -> the ClassVar / registry they feed.
OPTION_KINDS: dict[str, str] = {
    "deksdenflow.options.v1.event_type": "EVENT_TYPE",
    "deksdenflow.options.v1.command_type": "COMMAND_TYPE",
}
TYPE_STRING_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

# Locations in descriptor.proto, for SourceCodeInfo paths.
FILE_MESSAGE_TYPE = 4
FILE_ENUM_TYPE = 5
MESSAGE_FIELD = 2
MESSAGE_NESTED_TYPE = 3
MESSAGE_ENUM_TYPE = 4
ENUM_VALUE = 2

SCALARS: dict[int, tuple[str, str]] = {
    FieldProto.TYPE_STRING: ("str", '""'),
    FieldProto.TYPE_BOOL: ("bool", "False"),
    FieldProto.TYPE_BYTES: ("_base.ProtoBytes", 'b""'),
    FieldProto.TYPE_DOUBLE: ("float", "0.0"),
    FieldProto.TYPE_FLOAT: ("float", "0.0"),
    **dict.fromkeys(
        (
            FieldProto.TYPE_INT32,
            FieldProto.TYPE_INT64,
            FieldProto.TYPE_UINT32,
            FieldProto.TYPE_UINT64,
            FieldProto.TYPE_SINT32,
            FieldProto.TYPE_SINT64,
            FieldProto.TYPE_FIXED32,
            FieldProto.TYPE_FIXED64,
            FieldProto.TYPE_SFIXED32,
            FieldProto.TYPE_SFIXED64,
        ),
        ("int", "0"),
    ),
}
TIMESTAMP = ".google.protobuf.Timestamp"
STRUCT = ".google.protobuf.Struct"

# Field names that cannot be pydantic fields: attributes of BaseModel (copy, json, schema, ...) and
# the builtins the generated annotations use (a field named ``str`` would shadow ``str`` in the class).
RESERVED_FIELD_NAMES = frozenset(dir(pydantic.BaseModel)) | {
    "bool",
    "bytes",
    "dict",
    "float",
    "int",
    "str",
    "tuple",
}
PROTECTED = ("model_validate", "model_dump")  # pydantic's protected namespaces (``model_name`` is fine)
REGISTRY_MODULE = "registry"


class PluginError(Exception):
    """A contract the generator refuses; the message names the file and the element."""


@dataclass(frozen=True)
class ProtoType:
    """A message or enum anywhere in the request, addressed by its full name (``.pkg.Outer.Inner``)."""

    full_name: str
    file: str
    py_name: str
    message: descriptor_pb2.DescriptorProto | None = None
    enum: descriptor_pb2.EnumDescriptorProto | None = None


@dataclass
class Registered:
    """A message that carries an event_type / command_type option."""

    kind: str  # "EVENT_TYPE" | "COMMAND_TYPE"
    type_string: str
    file: str
    py_name: str
    full_name: str


@dataclass
class Context:
    """Everything known about the request."""

    types: dict[str, ProtoType] = field(default_factory=dict)
    option_numbers: dict[int, str] = field(default_factory=dict)  # extension number -> kind
    generated_files: set[str] = field(default_factory=set)
    registered: list[Registered] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- naming ---------------------------------------------------------------------------------------------


def module_parts(proto_file: str) -> list[str]:
    """``a/b/v1/c.proto`` -> ``["a", "b", "v1", "c"]`` (the Python module path under the output dir)."""
    return proto_file.removesuffix(".proto").split("/")


def module_alias(proto_file: str) -> str:
    """The name a generated module is imported under by other generated modules."""
    return "_" + "_".join(module_parts(proto_file))


def relative_import(from_file: str, to_file: str) -> str:
    """The ``from ... import module as alias`` line from one generated module to another."""
    here = module_parts(from_file)[:-1]  # the package the importing module lives in
    target = module_parts(to_file)
    common = 0
    while common < min(len(here), len(target) - 1) and here[common] == target[common]:
        common += 1
    source = "." * (len(here) - common + 1) + ".".join(target[common:-1])
    return f"from {source} import {target[-1]} as {module_alias(to_file)}"


def upper_snake(name: str) -> str:
    """``StepType`` -> ``STEP_TYPE``, ``HTTPStatus`` -> ``HTTP_STATUS`` (buf's ENUM_VALUE_PREFIX rule)."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words)
    return words.upper()


def is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def enum_members(enum: descriptor_pb2.EnumDescriptorProto) -> list[tuple[str, str]]:
    """(member name, member value) for every value, in declaration order."""
    prefix = upper_snake(enum.name) + "_"
    names = [value.name for value in enum.value]
    stripped = [name.removeprefix(prefix) for name in names]
    if all(name.startswith(prefix) for name in names) and all(is_identifier(s) for s in stripped):
        return list(zip(stripped, names, strict=True))
    return list(zip(names, names, strict=True))


# --- comments -------------------------------------------------------------------------------------------


def clean_comment(raw: str) -> str:
    lines = [line.rstrip() for line in raw.replace("\r", "").split("\n")]
    return textwrap.dedent("\n".join(lines)).strip()


def comments_of(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """SourceCodeInfo path -> the leading comment (or else the trailing comment) of that element."""
    found: dict[tuple[int, ...], str] = {}
    for location in file.source_code_info.location:
        text = clean_comment(location.leading_comments) or clean_comment(location.trailing_comments)
        if text:
            found.setdefault(tuple(location.path), text)
    return found


def docstring(text: str, indent: str) -> list[str]:
    """A docstring whose value is exactly ``text``: backslashes doubled, and every quote followed by
    another quote or ending the text escaped, so no run of three quotes can close it early."""
    body = re.sub(r'"(?="|$)', r'\\"', text.replace("\\", "\\\\"))
    lines = body.split("\n")
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    return (
        [f'{indent}"""{lines[0]}']
        + [f"{indent}{line}" if line else "" for line in lines[1:]]
        + [f'{indent}"""']
    )


# --- reading the request --------------------------------------------------------------------------------


def index_types(ctx: Context, request: plugin_pb2.CodeGeneratorRequest) -> None:
    """Record every message/enum of every file (dependencies included) and our option numbers."""
    for file in request.proto_file:
        prefix = f".{file.package}" if file.package else ""

        def walk_message(
            message: descriptor_pb2.DescriptorProto, scope: str, py_scope: str, file_name: str
        ) -> None:
            full_name = f"{scope}.{message.name}"
            py_name = f"{py_scope}_{message.name}" if py_scope else message.name
            ctx.types[full_name] = ProtoType(full_name, file_name, py_name, message=message)
            for nested in message.nested_type:
                walk_message(nested, full_name, py_name, file_name)
            for enum in message.enum_type:
                enum_name = f"{full_name}.{enum.name}"
                ctx.types[enum_name] = ProtoType(enum_name, file_name, f"{py_name}_{enum.name}", enum=enum)

        for message in file.message_type:
            walk_message(message, prefix, "", file.name)
        for enum in file.enum_type:
            ctx.types[f"{prefix}.{enum.name}"] = ProtoType(
                f"{prefix}.{enum.name}", file.name, enum.name, enum=enum
            )
        for extension in file.extension:
            full_name = f"{file.package}.{extension.name}" if file.package else extension.name
            if full_name in OPTION_KINDS:
                if (
                    extension.extendee != ".google.protobuf.MessageOptions"
                    or extension.type != FieldProto.TYPE_STRING
                ):
                    ctx.errors.append(
                        f"{file.name}: option {full_name} must be a string extension of MessageOptions"
                    )
                ctx.option_numbers[extension.number] = OPTION_KINDS[full_name]


def type_options(ctx: Context, message: descriptor_pb2.DescriptorProto) -> dict[str, str]:
    """Our custom options set on a message: kind -> type string.

    The plugin's protobuf runtime does not know our extensions, so their values arrive as unknown
    fields of ``MessageOptions``; we match them by the numbers declared in options.proto.
    """
    found: dict[str, str] = {}
    if not message.HasField("options") or not ctx.option_numbers:
        return found
    unknown = UnknownFieldSet(message.options)
    for index in range(len(unknown)):
        item = unknown[index]
        number = item.field_number
        data = item.data
        if isinstance(number, int) and number in ctx.option_numbers and isinstance(data, bytes):
            found[ctx.option_numbers[number]] = data.decode("utf-8")
    return found


# --- generating one module ------------------------------------------------------------------------------


class ModuleWriter:
    """Builds the Python source for one .proto file."""

    def __init__(self, ctx: Context, file: descriptor_pb2.FileDescriptorProto) -> None:
        self.ctx = ctx
        self.file = file
        self.comments = comments_of(file)
        self.imports: set[str] = set()
        self.local_names: set[str] = set()
        self.enums: list[str] = []
        self.messages: list[str] = []
        self.rebuild: list[str] = []
        self.message_order: list[str] = []  # py names, in emission order
        self.pending: list[tuple[descriptor_pb2.DescriptorProto, str, str, tuple[int, ...]]] = []
        self.local_refs: set[str] = set()  # local classes referred to by the message being written

    def error(self, where: str, message: str) -> None:
        self.ctx.errors.append(f"{self.file.name}: {where}: {message}")

    def declare(self, py_name: str, where: str) -> None:
        if py_name in self.local_names:
            self.error(where, f"the Python name {py_name} is used twice in this module")
        self.local_names.add(py_name)

    # references ----------------------------------------------------------------------------------

    def ref(self, full_name: str) -> ProtoType:
        found = self.ctx.types.get(full_name)
        if found is None:  # cannot happen for a request protoc/buf accepted
            raise PluginError(f"{self.file.name}: unknown type {full_name}")
        return found

    def type_expr(self, target: ProtoType, where: str) -> str:
        if target.file == self.file.name:
            self.local_refs.add(target.py_name)
            return target.py_name
        if target.file not in self.ctx.generated_files:
            name = target.full_name.lstrip(".")
            self.error(where, f"{name} comes from {target.file}, which is not generated")
            return "_typing.Any"
        self.imports.add(relative_import(self.file.name, target.file))
        return f"{module_alias(target.file)}.{target.py_name}"

    def zero_member(self, target: ProtoType, where: str) -> str:
        if target.enum is None or not target.enum.value:
            self.error(where, f"enum {target.full_name.lstrip('.')} has no values")
            return "None"
        member = enum_members(target.enum)[0][0]
        return f"{self.type_expr(target, where)}.{member}"

    # enums -------------------------------------------------------------------------------------------

    def write_enum(
        self, enum: descriptor_pb2.EnumDescriptorProto, py_name: str, path: tuple[int, ...]
    ) -> None:
        where = f"enum {py_name}"
        self.declare(py_name, where)
        lines = [f"class {py_name}(_base.OpenEnum):"]
        doc = self.comments.get(path, "")
        members = enum_members(enum)
        notes = [
            f"{member}: {self.comments[(*path, ENUM_VALUE, index)]}"
            for index, (member, _) in enumerate(members)
            if (*path, ENUM_VALUE, index) in self.comments
        ]
        if notes:
            doc = (doc + "\n\n" if doc else "") + "\n".join(notes)
        if doc:
            lines += [*docstring(doc, "    "), ""]
        if not enum.value:
            self.error(where, "an enum needs at least its zero value")
        seen: set[str] = set()
        for member, value in members:
            if member in seen:
                self.error(where, f"member {member} appears twice")
            seen.add(member)
            lines.append(f'    {member} = "{value}"')
        self.enums.append("\n".join(lines))

    # messages ----------------------------------------------------------------------------------------

    def collect(
        self, message: descriptor_pb2.DescriptorProto, scope: str, py_scope: str, path: tuple[int, ...]
    ) -> None:
        """Queue enums and messages, nested ones before their parent (parents usually refer to them)."""
        full_name = f"{scope}.{message.name}"
        py_name = f"{py_scope}_{message.name}" if py_scope else message.name
        for index, enum in enumerate(message.enum_type):
            self.write_enum(enum, f"{py_name}_{enum.name}", (*path, MESSAGE_ENUM_TYPE, index))
        for index, nested in enumerate(message.nested_type):
            if nested.options.map_entry:
                continue
            self.collect(nested, full_name, py_name, (*path, MESSAGE_NESTED_TYPE, index))
        self.message_order.append(py_name)
        self.pending.append((message, full_name, py_name, path))

    def field_type(self, fld: descriptor_pb2.FieldDescriptorProto, where: str) -> tuple[str, str | None]:
        """(annotation of one value, zero value expression or None when there is no scalar zero)."""
        if fld.type in SCALARS:
            return SCALARS[fld.type]
        if fld.type == FieldProto.TYPE_ENUM:
            target = self.ref(fld.type_name)
            enum_type = self.type_expr(target, where)
            # Open enum: readers of the log tolerate values added later (see base.open_enum_field).
            annotated = f"_typing.Annotated[{enum_type}, _base.open_enum_field({enum_type})]"
            return annotated, self.zero_member(target, where)
        if fld.type == FieldProto.TYPE_MESSAGE:
            if fld.type_name == TIMESTAMP:
                return "_base.UtcDatetime", None
            if fld.type_name == STRUCT:
                return "dict[str, _typing.Any]", None
            if fld.type_name.startswith(".google.protobuf."):
                self.error(
                    where,
                    f"{fld.type_name.lstrip('.')} is not supported (only Timestamp and Struct are)",
                )
                return "_typing.Any", None
            return self.type_expr(self.ref(fld.type_name), where), None
        self.error(where, f"field type {FieldProto.Type.Name(fld.type)} is not supported")
        return "_typing.Any", None

    def field_line(
        self,
        full_name: str,
        fld: descriptor_pb2.FieldDescriptorProto,
        description: str | None,
    ) -> str:
        where = f"field {full_name.lstrip('.')}.{fld.name}"
        if not is_identifier(fld.name) or fld.name in RESERVED_FIELD_NAMES or fld.name.startswith(PROTECTED):
            self.error(where, f"{fld.name!r} cannot be a pydantic field name: rename the field")
        factory = False
        if fld.label == FieldProto.LABEL_REPEATED:
            entry = self.ref(fld.type_name).message if fld.type == FieldProto.TYPE_MESSAGE else None
            if entry is not None and entry.options.map_entry:
                key, _ = self.field_type(entry.field[0], where)
                value, _ = self.field_type(entry.field[1], where)
                annotation, default, factory = f"dict[{key}, {value}]", "dict", True
            else:
                item, _ = self.field_type(fld, where)
                annotation, default = f"tuple[{item}, ...]", "()"
        else:
            value, zero = self.field_type(fld, where)
            if fld.type_name == STRUCT:
                annotation, default, factory = value, "dict", True
            elif zero is None or fld.proto3_optional:
                annotation, default = f"{value} | None", "None"
            else:
                annotation, default = value, zero
        value_expr = default
        if description or factory:
            arguments = [f"default_factory={default}" if factory else f"default={default}"]
            if description:
                arguments.append(f"description={description!r}")
            value_expr = f"_pydantic.Field({', '.join(arguments)})"
        return f"    {fld.name}: {annotation} = {value_expr}"

    def write_message(
        self, message: descriptor_pb2.DescriptorProto, full_name: str, py_name: str, path: tuple[int, ...]
    ) -> None:
        where = f"message {full_name.lstrip('.')}"
        self.declare(py_name, where)
        for oneof_index, oneof in enumerate(message.oneof_decl):
            synthetic = any(
                f.proto3_optional and f.HasField("oneof_index") and f.oneof_index == oneof_index
                for f in message.field
            )
            if not synthetic:
                self.error(where, f"oneof {oneof.name} is not supported: use separate optional fields")
        lines = [f"class {py_name}(_base.ContractModel):"]
        doc = self.comments.get(path)
        if doc:
            lines += [*docstring(doc, "    "), ""]
        lines.append(f'    PROTO_NAME: _typing.ClassVar[str] = "{full_name.lstrip(".")}"')
        options = type_options(self.ctx, message)
        if len(options) > 1:
            self.error(where, "a message is either an event or a command, not both")
        for kind, type_string in sorted(options.items()):
            if not TYPE_STRING_RE.match(type_string):
                self.error(
                    where,
                    f"{kind.lower()} {type_string!r} does not match {TYPE_STRING_RE.pattern} "
                    '(expected "<aggregate>.<what>", lower snake case)',
                )
            lines.append(f'    {kind}: _typing.ClassVar[str] = "{type_string}"')
            self.ctx.registered.append(
                Registered(kind, type_string, self.file.name, py_name, full_name.lstrip("."))
            )
        if message.field:
            lines.append("")
        self.local_refs = set()
        for index, fld in enumerate(message.field):
            lines.append(self.field_line(full_name, fld, self.comments.get((*path, MESSAGE_FIELD, index))))
        # Annotations naming a class defined further down (or this one) resolve once the module is done.
        if self.local_refs & set(self.message_order[self.message_order.index(py_name) :]):
            self.rebuild.append(py_name)
        self.messages.append("\n".join(lines))

    # the module --------------------------------------------------------------------------------------

    def render(self) -> str:
        file = self.file
        if file.syntax != "proto3":
            syntax = file.syntax or "proto2"
            self.error("syntax", f'{syntax} is not supported: use syntax = "proto3"')
            return ""
        if file.service:
            self.error("service", "services are not supported by the generator")
        for part in module_parts(file.name):
            if not is_identifier(part):
                self.error("path", f"{part!r} is not a valid Python module name: rename the file/directory")
        package = f".{file.package}" if file.package else ""
        for index, enum in enumerate(file.enum_type):
            self.write_enum(enum, enum.name, (FILE_ENUM_TYPE, index))
        for index, message in enumerate(file.message_type):
            self.collect(message, package, "", (FILE_MESSAGE_TYPE, index))
        for message, full_name, py_name, path in self.pending:
            self.write_message(message, full_name, py_name, path)

        lines = [
            f"# Generated from {file.name} by {PLUGIN_NAME}. DO NOT EDIT.",
            f'"""Bindings of {file.name} (proto package {file.package or "<none>"})."""',
            "",
            "from __future__ import annotations",
            "",
        ]
        body = "\n".join([*self.enums, *self.messages])
        if self.messages:
            lines.append("import typing as _typing")
            if "_pydantic." in body:
                lines += ["", "import pydantic as _pydantic"]
        lines += ["", f"from {BASE_MODULE} import base as _base"]
        if self.imports:
            lines += ["", *sorted(self.imports)]
        for block in [*self.enums, *self.messages]:
            lines += ["", "", block]
        if self.rebuild:
            lines += ["", "", *(f"{name}.model_rebuild()" for name in self.rebuild)]
        return "\n".join(lines) + "\n"


# --- the whole request ----------------------------------------------------------------------------------


def has_types(file: descriptor_pb2.FileDescriptorProto) -> bool:
    return bool(file.message_type or file.enum_type)


def render_registry(ctx: Context) -> str:
    by_kind: dict[str, dict[str, Registered]] = {"EVENT_TYPE": {}, "COMMAND_TYPE": {}}
    for item in ctx.registered:
        for entries in by_kind.values():
            other = entries.get(item.type_string)
            if other is not None:
                ctx.errors.append(
                    f"{item.file}: message {item.full_name}: {item.kind.lower()} {item.type_string!r} "
                    f"is already declared by {other.full_name} ({other.file}); type strings must be unique"
                )
        by_kind[item.kind][item.type_string] = item
    imports = sorted({relative_import(REGISTRY_MODULE + ".proto", item.file) for item in ctx.registered})
    lines = [
        f"# Generated by {PLUGIN_NAME}. DO NOT EDIT.",
        '"""Every message with an event_type / command_type option, keyed by that type string."""',
        "",
        f"from {BASE_MODULE}.base import ContractModel",
        "",
        *imports,
        "",
    ]
    for kind, name in (("EVENT_TYPE", "EVENT_TYPES"), ("COMMAND_TYPE", "COMMAND_TYPES")):
        entries = by_kind[kind]
        lines.append(f"{name}: dict[str, type[ContractModel]] = {{")
        for type_string in sorted(entries):
            item = entries[type_string]
            lines.append(f'    "{type_string}": {module_alias(item.file)}.{item.py_name},')
        lines.append("}")
    return "\n".join(lines) + "\n"


def package_inits(modules: Sequence[str]) -> Iterator[tuple[str, str]]:
    packages = {""}
    for module in modules:
        parts = module.split("/")[:-1]
        packages.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    for package in sorted(packages):
        name = f"{package}/__init__.py" if package else "__init__.py"
        if package:
            yield name, f"# Generated by {PLUGIN_NAME}. DO NOT EDIT.\n"
        else:
            yield (
                name,
                (
                    f"# Generated by {PLUGIN_NAME}. DO NOT EDIT.\n"
                    '"""Python bindings generated from proto/ (see proto/codegen). DO NOT EDIT."""\n'
                ),
            )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> dict[str, str]:
    """Output file name -> content, for the whole request."""
    ctx = Context()
    index_types(ctx, request)
    by_name = {file.name: file for file in request.proto_file}
    targets = [by_name[name] for name in sorted(request.file_to_generate) if has_types(by_name[name])]
    ctx.generated_files = {file.name for file in targets}
    outputs: dict[str, str] = {}
    for file in targets:
        outputs[file.name.removesuffix(".proto") + ".py"] = ModuleWriter(ctx, file).render()
    outputs["registry.py"] = render_registry(ctx)
    module_names = [name.removesuffix(".py") for name in outputs]
    for name in module_names:  # a module and a package (or the registry) must not share a path
        if any(other.startswith(name + "/") for other in module_names):
            ctx.errors.append(f"{name}.proto: its module {name}.py would clash with the package {name}/")
    if "registry.py" in {file.name.removesuffix(".proto") + ".py" for file in targets}:
        ctx.errors.append("registry.proto: the name is taken by the generated registry.py")
    outputs.update(package_inits(sorted(outputs)))
    if ctx.errors:
        raise PluginError("\n".join(ctx.errors))
    return dict(sorted(outputs.items()))


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    try:
        for name, content in generate(request).items():
            response.file.add(name=name, content=content)
    except PluginError as exc:
        response.error = f"{PLUGIN_NAME}: {exc}"
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
