package bus

// Hold keeps c (idle, nothing queued) from storing what is submitted until release is called,
// so that a test knows which messages form a group.
func (c *Committer) Hold() (release func()) {
	c.mu.Lock()
	c.busy = true
	c.mu.Unlock()
	return func() { go c.drain() }
}
