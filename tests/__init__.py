"""Test package of cxr-gan (lets tests import shared helpers such as ``tests.fixtures_images``)."""
