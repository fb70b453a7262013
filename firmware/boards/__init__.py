# Pins per supported board: one module per board, named by config.json's "board" (see config.BOARDS).
