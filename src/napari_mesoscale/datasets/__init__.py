"""Real-animal data sets read from optional, separately installed data packages.

- :mod:`napari_mesoscale.datasets.celegans`: the *C. elegans* neurons (positions from c302),
  connectomes (White 1986, Varshney 2011, Cook 2019, Witvliet 2021 from cect) and the
  signal-propagation atlas of Randi et al. 2023 (from wormneuroatlas). Needs the ``worm`` extra.
"""
