// Command kubevirt-crds writes KubeVirt's CustomResourceDefinitions as one multi-document YAML
// stream to stdout, built by the same constructors virt-operator uses to install them
// (kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components), plus the KubeVirt CRD
// itself, which the operator's own manifest carries. They are marshalled with sigs.k8s.io/yaml:
// KubeVirt's own YAML writer produces invalid YAML for some of them.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	"sigs.k8s.io/yaml"
)

func main() {
	constructors := []func() (*extv1.CustomResourceDefinition, error){
		components.NewKubeVirtCrd,
		// the list virt-operator's install strategy installs (install/strategy.go)
		components.NewVirtualMachineInstanceCrd, components.NewPresetCrd, components.NewReplicaSetCrd,
		components.NewVirtualMachineCrd, components.NewVirtualMachineInstanceMigrationCrd,
		components.NewVirtualMachineSnapshotCrd, components.NewVirtualMachineSnapshotContentCrd,
		components.NewVirtualMachineRestoreCrd, components.NewVirtualMachineInstancetypeCrd,
		components.NewVirtualMachineClusterInstancetypeCrd, components.NewVirtualMachinePoolCrd,
		components.NewMigrationPolicyCrd, components.NewVirtualMachinePreferenceCrd,
		components.NewVirtualMachineClusterPreferenceCrd, components.NewVirtualMachineExportCrd,
		components.NewVirtualMachineCloneCrd,
	}
	for _, newCrd := range constructors {
		crd, err := newCrd()
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubevirt-crds: %v\n", err)
			os.Exit(1)
		}
		out, err := marshal(crd)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kubevirt-crds: marshal %s: %v\n", crd.Name, err)
			os.Exit(1)
		}
		fmt.Printf("---\n%s", out)
	}
}

// marshal renders a CRD as YAML without the empty status and creationTimestamp that the Go
// structs always carry: what a user would write, accepted by create and server-side apply.
func marshal(crd *extv1.CustomResourceDefinition) ([]byte, error) {
	raw, err := json.Marshal(crd)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	delete(obj, "status")
	if meta, ok := obj["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(obj)
}
