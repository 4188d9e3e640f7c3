"""Helpers every layer may use (files, output paths, errors, latent shards, command-line types); importing the
package imports none of them and registers nothing (``register_all_modules`` is :mod:`transvae.apis.setup_env`)."""
