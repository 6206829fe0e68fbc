// Package batching is how a backend package tells spendcap's Batcher which reports must never
// share a batch (on a Valkey cluster, reports of different slots), without an exported method
// that only the Batcher would call.
package batching

// A Partitioner returns the partition of a report on budgetID: the Batcher puts reports of
// different partitions in different batches.
type Partitioner func(budgetID string) string

// partitionersOf holds what backend packages registered, in their init functions.
var partitionersOf []func(backend any) (Partitioner, bool)

// Register adds f, which returns the Partitioner of the backends it knows. Backend packages call
// it from init, before any Batcher exists.
func Register(f func(backend any) (Partitioner, bool)) { partitionersOf = append(partitionersOf, f) }

// Of returns backend's Partitioner, or nil when every report of backend may share a batch.
func Of(backend any) Partitioner {
	for _, f := range partitionersOf {
		if p, ok := f(backend); ok {
			return p
		}
	}
	return nil
}
