"""TOML file + environment -> a typed, validated :class:`Config` (SPEC section 7).

One TOML file, ``[section]`` tables of ``key = value``; every key has a
default, and an environment variable ``PLATFORMA_C2D_<SECTION>_<KEY>``
overrides the file. Loading never stops at the first mistake:
:class:`ConfigError` lists every problem at once. Secrets never appear in a
message, a ``repr`` or :meth:`Config.redacted` (SPEC section 9).

The package, one file per job:

- :mod:`~platforma_c2d.config.checks`: pure predicates on a typed value
  (listen addresses, loopback, URL masking).
- :mod:`~platforma_c2d.config.schema`: the section dataclasses, their
  defaults and checks, and :class:`Config`.
- :mod:`~platforma_c2d.config.loader`: :func:`load_config` /
  :func:`loads_config`, TOML parsing, environment overrides,
  :class:`ConfigError`.

Import from here (``from platforma_c2d.config import Config``); the names
below are the public interface.
"""

from platforma_c2d.config.checks import MASK, is_loopback, mask_url, split_listen
from platforma_c2d.config.loader import (
    ENV_IGNORED,
    ENV_PREFIX,
    ConfigError,
    load_config,
    loads_config,
)
from platforma_c2d.config.schema import (
    LOG_FORMATS,
    LOG_LEVELS,
    SECTIONS,
    AgiConfig,
    AriConfig,
    AuthConfig,
    ClidConfig,
    Config,
    DialConfig,
    HttpConfig,
    LimitsConfig,
    LogConfig,
    PagesConfig,
    PolicyConfig,
    StoreConfig,
    TokenConfig,
    TrunkConfig,
    WebhookEndpoint,
    WebhooksConfig,
)

__all__ = [
    "ENV_IGNORED",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MASK",
    "SECTIONS",
    "AgiConfig",
    "AriConfig",
    "AuthConfig",
    "ClidConfig",
    "Config",
    "ConfigError",
    "DialConfig",
    "HttpConfig",
    "LimitsConfig",
    "LogConfig",
    "PagesConfig",
    "PolicyConfig",
    "StoreConfig",
    "TokenConfig",
    "TrunkConfig",
    "WebhookEndpoint",
    "WebhooksConfig",
    "is_loopback",
    "load_config",
    "loads_config",
    "mask_url",
    "split_listen",
]
