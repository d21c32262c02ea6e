"""rtdstft_gui: the desktop application of rtdstft, a live adaptive spectrogram (PyQt6 + pyqtgraph).

A thin client of the engine: :mod:`.worker` owns the StreamingDSTFT and the audio source in its own
thread and hands over finished columns; :mod:`.spectrogram`, :mod:`.theta` and :mod:`.meter` draw
what they are given; :mod:`.controls` turns user input into engine and display settings;
:mod:`.window` wires them; :mod:`.app` is the command line.
"""
