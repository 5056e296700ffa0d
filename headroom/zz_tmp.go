package headroom
type ObservedReplicaSet struct{ Name string; Labels map[string]string; Replicas int32 }
