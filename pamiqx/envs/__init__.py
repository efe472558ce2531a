"""Built-in environment plugins: the simulated maze and Gymnasium worlds."""
