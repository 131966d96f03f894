package bus

// SetTaken tells f the size of the batch r is filling each time it grows.
func (r *BatchRunner) SetTaken(f func(n int)) { r.taken = f }
